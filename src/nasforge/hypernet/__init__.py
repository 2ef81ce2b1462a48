"""Graph hypernetworks (GHN-1, Zhang et al., 2019; GHN-2, Knyazev et al., 2021): predict every weight of a network
from its op graph, to rank unseen architectures without training them.

``encode`` turns a family's ``OpGraph`` into what the GHN reads (torch-free); ``model`` is the GHN; ``train`` runs
networks on predicted weights, trains a GHN and saves it. Import the submodules (they import torch).
"""
