# Empty compiler generated dependencies file for airssys-port-holder.
# This may be replaced when dependencies are built.
