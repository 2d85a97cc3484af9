# Empty dependencies file for shutdown_test.
# This may be replaced when dependencies are built.
