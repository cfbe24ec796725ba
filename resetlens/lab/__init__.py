"""The real reset lab: namespaces, nginx, HAProxy, nftables and tcpdump that put real RSTs on the wire.

`resetlens lab run SCENARIO|all --out DIR` writes one bundle per scenario (contract §2) with a
truth.json that the lab has verified against its own captures.
"""
