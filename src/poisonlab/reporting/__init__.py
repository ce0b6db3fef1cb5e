"""Reporting: accuracy curves, flip and detection tables and figures, and the self-contained HTML report."""
