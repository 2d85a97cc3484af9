# Empty dependencies file for airssys_arch.
# This may be replaced when dependencies are built.
