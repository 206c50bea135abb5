"""Order books (L2 price levels, L3 orders), compiled, and their plain-Python references."""
