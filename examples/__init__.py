"""Templates for your own code: copy a file, change it, and name it on evaluate.py's command line."""
