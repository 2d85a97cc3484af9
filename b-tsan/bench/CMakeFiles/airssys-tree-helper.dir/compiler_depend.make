# Empty compiler generated dependencies file for airssys-tree-helper.
# This may be replaced when dependencies are built.
