# Empty compiler generated dependencies file for supervision_process_test.
# This may be replaced when dependencies are built.
