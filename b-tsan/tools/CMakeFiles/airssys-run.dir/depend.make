# Empty dependencies file for airssys-run.
# This may be replaced when dependencies are built.
