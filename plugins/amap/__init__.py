"""AMAP short-circuit ordering: contracts with producers, baskets paid in local units."""
