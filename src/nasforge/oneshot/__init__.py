"""One-shot NAS: SPOS, DARTS, GDAS and ProxylessNAS on the supernets the family blueprints derive."""
