# Empty compiler generated dependencies file for airssys_run_test.
# This may be replaced when dependencies are built.
