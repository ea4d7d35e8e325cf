"""Apply: the spec becomes an Ansible inventory and the playbooks run against it."""
