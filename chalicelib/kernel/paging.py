"""Paging of listings: the most items one page may ask for."""

MAX_PAGE = 100
