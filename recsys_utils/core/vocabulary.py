"""One column vocabulary for every table in the course.

Every loader, splitter, model and metric speaks these names, so a DataFrame from the
simulated marketplace, MovieLens or Online Retail can be handed to any of them.
"""

USER = "user_id"
ITEM = "item_id"
TIMESTAMP = "timestamp"
EVENT = "event"
WEIGHT = "weight"
RATING = "rating"
SCORE = "score"
RANK = "rank"
SESSION = "session_id"
CATEGORY = "category"
BRAND = "brand"
PRICE = "price"
TITLE = "title"
SEGMENT = "segment"

# Implicit-feedback events of the marketplace, weakest to strongest signal.
VIEW = "view"
FAVORITE = "favorite"
CART = "add_to_cart"
PURCHASE = "purchase"
EVENTS = (VIEW, FAVORITE, CART, PURCHASE)

# The event of a rating row (MovieLens): explicit feedback, used as an implicit interaction.
RATED = "rating"

# Default confidence weight of each event when interactions are aggregated into a matrix. Every
# MovieLens rating counts as one interaction, whatever its value, as in the implicit-feedback
# literature on MovieLens (He et al. 2017; Rendle et al. 2020): a rating says the user watched the
# film. Lessons that need the values themselves read the ``rating`` column (explicit MF in notebook 03).
EVENT_WEIGHTS = {VIEW: 1.0, FAVORITE: 2.0, CART: 3.0, PURCHASE: 5.0, RATED: 1.0}
