"""The simulated marketplace's catalogue vocabulary and customer segments.

Kept apart from the generator so that lessons can print it and tests can refer to it.
"""

from __future__ import annotations

# top category -> leaf category -> (typical price, product nouns used in titles)
TAXONOMY: dict[str, dict[str, tuple[float, tuple[str, ...]]]] = {
    "Electronics": {
        "Phones": (420.0, ("Smartphone", "Phone", "Phone Case")),
        "Audio": (80.0, ("Earbuds", "Headphones", "Speaker")),
        "Computers": (650.0, ("Laptop", "Monitor", "Keyboard")),
        "Smart Home": (60.0, ("Smart Plug", "Security Camera", "Smart Hub")),
    },
    "Home & Kitchen": {
        "Cookware": (45.0, ("Frying Pan", "Saucepan", "Wok")),
        "Appliances": (120.0, ("Blender", "Kettle", "Air Fryer")),
        "Bedding": (55.0, ("Duvet", "Pillow", "Sheet Set")),
        "Storage": (25.0, ("Storage Box", "Shelf", "Basket")),
    },
    "Fashion": {
        "Womenswear": (50.0, ("Dress", "Blouse", "Skirt")),
        "Menswear": (45.0, ("Shirt", "Chinos", "Jacket")),
        "Shoes": (70.0, ("Sneakers", "Boots", "Sandals")),
        "Bags": (60.0, ("Backpack", "Tote Bag", "Wallet")),
    },
    "Beauty": {
        "Skincare": (28.0, ("Serum", "Moisturiser", "Cleanser")),
        "Makeup": (20.0, ("Lipstick", "Mascara", "Foundation")),
        "Haircare": (15.0, ("Shampoo", "Conditioner", "Hair Oil")),
        "Fragrance": (65.0, ("Eau de Parfum", "Body Mist", "Cologne")),
    },
    "Sports & Outdoors": {
        "Fitness": (40.0, ("Yoga Mat", "Dumbbells", "Resistance Band")),
        "Cycling": (150.0, ("Bike Helmet", "Bike Light", "Cycling Jersey")),
        "Camping": (85.0, ("Tent", "Sleeping Bag", "Lantern")),
        "Running": (60.0, ("Running Shoes", "Sports Watch", "Running Vest")),
    },
    "Toys & Kids": {
        "Building Toys": (35.0, ("Building Set", "Wooden Blocks", "Marble Run")),
        "Baby Care": (25.0, ("Diapers", "Baby Wipes", "Feeding Bottle")),
        "Games & Puzzles": (30.0, ("Board Game", "Jigsaw Puzzle", "Card Game")),
        "Kids Clothing": (20.0, ("Kids T-Shirt", "Pyjamas", "Raincoat")),
    },
    "Grocery": {
        "Snacks": (4.0, ("Crisps", "Chocolate Bar", "Granola")),
        "Beverages": (6.0, ("Coffee Beans", "Green Tea", "Sparkling Water")),
        "Pantry": (5.0, ("Olive Oil", "Pasta", "Basmati Rice")),
        "Fresh": (7.0, ("Avocados", "Berries", "Cheddar")),
    },
    "Books & Media": {
        "Fiction": (14.0, ("Novel", "Thriller", "Fantasy Saga")),
        "Non-fiction": (18.0, ("Cookbook", "Biography", "History Book")),
        "Video Games": (55.0, ("Video Game", "Game Controller", "Gaming Headset")),
        "Music": (16.0, ("Vinyl Record", "CD Box Set", "Songbook")),
    },
}

#: categories whose products are bought again and again
CONSUMABLE_TOPS = ("Grocery", "Beauty")

ADJECTIVES = (
    "Classic",
    "Pro",
    "Eco",
    "Ultra",
    "Compact",
    "Deluxe",
    "Essential",
    "Smart",
    "Premium",
    "Lite",
    "Everyday",
    "Organic",
    "Wireless",
    "Vintage",
    "Sport",
    "Soft",
    "Travel",
    "Family",
)
MODEL_SUFFIXES = ("", "", "", "X2", "300", "Max", "Mini", "Plus", "S", "2026", "Air", "One")

# six brands per top category, cheapest tier first; the multiplier scales the typical price
BRAND_TIERS = (0.6, 0.8, 1.0, 1.0, 1.4, 2.1)
BRANDS: dict[str, tuple[str, ...]] = {
    "Electronics": ("Voltix", "Nuvo", "Kestrel", "Orbita", "Zentra", "Aurelion"),
    "Home & Kitchen": ("Homely", "Casa Nova", "Brightly", "Oakridge", "Maison Belle", "Ferrant"),
    "Fashion": ("Threadly", "Urban Loom", "Norda", "Velour", "Atelier K", "Maison Serein"),
    "Beauty": ("Glowra", "Purelle", "Lumea", "Dermis", "Sérène", "Ambre Luxe"),
    "Sports & Outdoors": ("Stride", "Peakline", "Trailcraft", "Ventra", "Alpinist", "Summit Pro"),
    "Toys & Kids": ("Tiny Tots", "Playmore", "Bricko", "Little Oak", "Wonderkin", "Heirloom Toys"),
    "Grocery": ("Daily Basket", "FarmFresh", "Green Valley", "Harvest & Co", "Delicato", "Epicure"),
    "Books & Media": ("Pageturn", "Inkwell", "Northlight", "Pixelforge", "Harbor Press", "Folio Rare"),
}

# Customer segments: category taste, price sensitivity (positive = prefers cheap), activity,
# funnel offsets, device mix (app, mobile web, desktop), peak hour, age (mean, sd), share female,
# city tier mix (tier 1, 2, 3) and share of all users.
SEGMENTS: dict[str, dict] = {
    "bargain_hunter": dict(
        tops={"Grocery": 1.2, "Home & Kitchen": 0.7, "Toys & Kids": 0.3, "Fashion": 0.3},
        price_sensitivity=1.8,
        activity=0.1,
        cart=-0.1,
        buy=0.5,
        favorite=-0.3,
        devices=(0.70, 0.22, 0.08),
        peak_hour=20.5,
        age=(38, 11),
        female=0.55,
        city_tiers=(0.15, 0.35, 0.50),
        share=0.25,
    ),
    "premium": dict(
        tops={"Electronics": 0.7, "Fashion": 0.9, "Beauty": 0.6, "Home & Kitchen": 0.3},
        price_sensitivity=-0.9,
        activity=-0.3,
        cart=0.2,
        buy=0.6,
        favorite=0.2,
        devices=(0.45, 0.10, 0.45),
        peak_hour=21.5,
        age=(43, 9),
        female=0.50,
        city_tiers=(0.70, 0.25, 0.05),
        share=0.15,
    ),
    "family": dict(
        tops={"Toys & Kids": 1.5, "Grocery": 0.8, "Home & Kitchen": 0.9},
        price_sensitivity=0.8,
        activity=0.2,
        cart=0.1,
        buy=0.3,
        favorite=0.0,
        devices=(0.60, 0.30, 0.10),
        peak_hour=13.5,
        age=(36, 6),
        female=0.68,
        city_tiers=(0.30, 0.45, 0.25),
        share=0.22,
    ),
    "tech_gamer": dict(
        tops={"Electronics": 1.5, "Books & Media": 1.0, "Sports & Outdoors": 0.2},
        price_sensitivity=0.3,
        activity=0.35,
        cart=-0.4,
        buy=-0.3,
        favorite=0.4,
        devices=(0.25, 0.15, 0.60),
        peak_hour=23.0,
        age=(27, 6),
        female=0.22,
        city_tiers=(0.50, 0.35, 0.15),
        share=0.18,
    ),
    "style_beauty": dict(
        tops={"Beauty": 1.5, "Fashion": 1.3, "Sports & Outdoors": 0.3},
        price_sensitivity=0.5,
        activity=0.15,
        cart=0.3,
        buy=0.0,
        favorite=0.9,
        devices=(0.75, 0.20, 0.05),
        peak_hour=19.0,
        age=(29, 7),
        female=0.82,
        city_tiers=(0.45, 0.40, 0.15),
        share=0.20,
    ),
}

DEVICES = ("app", "mobile_web", "desktop")
CITIES = (
    ("Shanghai", "Beijing", "Shenzhen", "Guangzhou"),
    ("Hangzhou", "Chengdu", "Wuhan", "Nanjing"),
    ("Luoyang", "Zhuzhou", "Yichang", "Mianyang"),
)
MEMBER_LEVELS = ("bronze", "silver", "gold", "platinum")


def leaf_names() -> list[str]:
    """Leaf categories as ``"Top > Leaf"`` paths, in a fixed order."""
    return [f"{top} > {leaf}" for top, leaves in TAXONOMY.items() for leaf in leaves]


def top_names() -> list[str]:
    return list(TAXONOMY)
