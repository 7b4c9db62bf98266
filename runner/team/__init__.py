"""A team server: runs handed to `playbook worker` processes (Celery, Redis broker), state in Postgres.

Nothing here is imported unless a project configures `[queue] broker`; SQLite and in-process runs stay the
default. See the README, Team server."""
