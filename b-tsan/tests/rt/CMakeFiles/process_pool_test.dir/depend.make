# Empty dependencies file for process_pool_test.
# This may be replaced when dependencies are built.
