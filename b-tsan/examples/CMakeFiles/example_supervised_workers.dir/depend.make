# Empty dependencies file for example_supervised_workers.
# This may be replaced when dependencies are built.
