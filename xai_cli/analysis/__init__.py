"""One runner per command. A runner has `run(cfg, report) -> metrics` and `render(metrics, run_dir)`."""
