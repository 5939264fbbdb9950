"""The `voxdesk` command line and its headless sub-commands."""
