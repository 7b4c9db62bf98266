from runner.testing.fake_llm import main

main()
