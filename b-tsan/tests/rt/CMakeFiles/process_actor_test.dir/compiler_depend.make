# Empty compiler generated dependencies file for process_actor_test.
# This may be replaced when dependencies are built.
