file(REMOVE_RECURSE
  "../lib/libairssys_base.a"
)
