"""playbook runner: YAML playbooks for product-operations work."""
