# Empty compiler generated dependencies file for airssys_rt.
# This may be replaced when dependencies are built.
