#!/bin/sh
# /usr/bin/voxdesk — starts the bundled VoxDesk installed in /opt/voxdesk.
exec /opt/voxdesk/voxdesk "$@"
