"""``translator doctor``: measure this box (measure.py), recommend settings (advice.py), the command (cli.py)."""
