"""The cost model: prices, measurements and the arithmetic behind ``python -m bench cost``."""
