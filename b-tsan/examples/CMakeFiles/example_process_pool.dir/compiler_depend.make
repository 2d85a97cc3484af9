# Empty compiler generated dependencies file for example_process_pool.
# This may be replaced when dependencies are built.
