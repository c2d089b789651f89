"""The bulksend command line and local runtime (embedded Redis, demo)."""
