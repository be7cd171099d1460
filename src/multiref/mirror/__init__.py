"""Mirror (Li, Kiseleva & de Rijke, 2021) around its model (multiref.models.mirror): triples, MMI, the pairwise judge, the human-evaluation sheet."""
