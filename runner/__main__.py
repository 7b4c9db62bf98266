from runner.cli import entry

if __name__ == "__main__":  # not when a spawned process (runner/evals/parallel.py) imports this as its main module
    entry()
