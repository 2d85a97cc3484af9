# Empty compiler generated dependencies file for airssys_base.
# This may be replaced when dependencies are built.
