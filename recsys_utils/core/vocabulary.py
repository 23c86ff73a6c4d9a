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

# Default confidence weight of each event when interactions are aggregated into a matrix.
EVENT_WEIGHTS = {VIEW: 1.0, FAVORITE: 2.0, CART: 3.0, PURCHASE: 5.0}
