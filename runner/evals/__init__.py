"""The eval engine: suites (`suite`, `load`), runs (`run_case`, `engine`), checks (`paths`, `assertions`),
record/replay (`cassette`), baselines (`baseline`), reports (`report`, `report_html`) and the pytest plugin."""
