"""Sources: find sessions by scanning folders once, or by watching them."""
