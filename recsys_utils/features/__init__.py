"""Feature engineering: user profiles, item attributes, context features and segmentation."""
