# Empty compiler generated dependencies file for readme_supervision_example.
# This may be replaced when dependencies are built.
