"""Parts of pages: widgets that a page, or several, draw (the pages themselves are the files above)."""
