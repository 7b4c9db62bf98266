"""`playbook import`: other tools' workflow files (Dify's DSL) translated into readable playbooks, with a report
of what could not be translated and why."""
