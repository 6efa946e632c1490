"""tileswap.host"""
