"""The playbook language, phases one and two: load (YAML with line:column marks → pydantic models) and
validate (references, topology, templates, inputs, schedules). Pure: text in, a checked `Playbook` or
`file:line:col` diagnostics out; nothing here runs a step."""
