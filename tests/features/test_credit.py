import pandas as pd

from features.credit import rating_in_force


def test_latest_rating_at_or_before_the_time_else_regular():
    ratings = pd.DataFrame(
        {
            "enterprise_id": ["E1", "E1", "E2"],
            "effective_from": pd.to_datetime(
                ["2024-01-01", "2024-06-01", "2024-03-01"], utc=True
            ).as_unit("us"),
            "rating": ["aeo_certified", "discredited", "severely_discredited"],
        }
    )
    ids = ["E1", "E1", "E1", "E2", "E3", None]
    times = pd.to_datetime(
        ["2023-12-31", "2024-05-31", "2024-06-01", "2024-03-02", "2024-07-01", "2024-07-01"],
        utc=True,
    )
    got = rating_in_force(ids, times, ratings)
    assert list(got) == [
        "regular",
        "aeo_certified",
        "discredited",  # effective_from <= t: in force from its first instant
        "severely_discredited",
        "regular",
        "regular",
    ]
    assert list(rating_in_force(ids, times, None)) == ["regular"] * 6
