# Empty dependencies file for airssys_osl.
# This may be replaced when dependencies are built.
