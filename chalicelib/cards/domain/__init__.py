"""The cards domain: inventory (vehicles, cards, states), the card lifecycle record, the one-ID limit."""
