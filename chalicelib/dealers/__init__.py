"""Dealers (经销商, 第二十条): dealer accounts belong to a dealer code of the inventory and see only the
vehicles sold through it; a dealer starts an owner's registration on the spot (a single-use hand-off to
the H5 client on the dealer's tablet), and the dealer's side keeps nothing of the owner.
"""
