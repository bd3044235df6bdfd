"""Views of what the stack saw and did: rerun recordings (``rerun_view``) and reading them back (``rrd_read``)."""
