"""The bundled sample corpus: a few dozen documents and images, written on demand.

``write_sample(folder)`` writes text files (.md, .txt), an HTML page, a JSONL file of
records, and simple generated images with caption sidecars. It is small enough to index
in seconds and varied enough to exercise every reader; its topics are distinct, so a
query about one lands on it (``EXPECTED`` lists a few such queries and their answers).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = ["EXPECTED", "write_sample"]

DOCUMENTS: dict[str, str] = {
    "animals/cats.md": "# Cats\n\nCats purr when they are content and sleep for much of the "
    "day, often in a patch of sun. A cat grooms its fur with a rough tongue.",
    "animals/dogs.md": "# Dogs\n\nDogs were the first animals people domesticated. They "
    "herd sheep, guard homes and fetch sticks, and they bark at strangers.",
    "animals/bees.md": "# Honey bees\n\nBees collect nectar from flowers and turn it into "
    "honey. A hive has one queen, thousands of workers and a few drones.",
    "animals/owls.txt": "Owls hunt at night. Their large eyes and silent feathers let them "
    "catch mice in the dark, and they can turn their heads a long way round.",
    "animals/whales.txt": "Blue whales are the largest animals that ever lived. They feed "
    "on krill, tiny shrimp-like creatures, by gulping huge mouthfuls of sea water.",
    "transport/trains.md": "# Night trains\n\nSleeper trains carry passengers overnight in "
    "couchettes and sleeping cars, arriving in another city by morning.",
    "transport/bicycles.md": "# Bicycles\n\nA bicycle turns pedalling into motion through a "
    "chain and gears. Cycling to work is cheap, quiet and keeps riders fit.",
    "transport/sailing.txt": "Sailing boats use the wind. Sailors trim the sails and steer "
    "with the rudder, tacking back and forth to travel upwind.",
    "transport/rockets.txt": "Rockets carry satellites into orbit. Liquid fuel and oxidiser "
    "burn in the engine, and the exhaust pushes the rocket upward.",
    "food/bread.md": "# Baking bread\n\nBread dough rises as yeast ferments the sugars in "
    "flour. Knead the dough, let it prove, then bake it in a hot oven.",
    "food/tea.md": "# Tea\n\nTea is brewed by steeping leaves in hot water. Green tea wants "
    "cooler water than black tea, and oolong sits in between.",
    "food/cheese.txt": "Cheese is made by curdling milk with rennet, pressing the curds and "
    "ageing the wheels in a cool cellar for weeks or years.",
    "food/chocolate.txt": "Chocolate comes from cacao beans, which are fermented, dried, "
    "roasted and ground into a paste with sugar and cocoa butter.",
    "weather/rain.md": "# Rain\n\nRain falls when droplets in clouds grow heavy. Rivers and "
    "reservoirs fill, and umbrellas come out in the streets.",
    "weather/snow.md": "# Snow\n\nSnowflakes form when water vapour freezes on dust in cold "
    "clouds. Every flake has six arms, and fresh snow muffles sound.",
    "weather/lightning.txt": "Lightning is a giant electric spark between a cloud and the "
    "ground. Thunder is the sound of the air heated by the bolt expanding.",
    "space/moon.md": "# The Moon\n\nThe Moon orbits the Earth every 27 days and shows phases "
    "as sunlight falls on it. Its gravity drives the ocean tides.",
    "space/mars.txt": "Mars is the red planet. Its dust is rich in iron oxide, and rovers "
    "have found dry river beds where water once flowed.",
    "music/piano.md": "# Piano\n\nA piano has 88 keys. Pressing a key makes a felt hammer "
    "strike a string, and the pedals sustain or soften the notes.",
    "music/drums.txt": "Drummers keep the rhythm of a band with a kick drum, a snare and "
    "cymbals, playing patterns called grooves.",
    "sport/chess.md": "# Chess\n\nChess is a board game for two players. Each side has a "
    "king, a queen, rooks, bishops, knights and pawns; checkmate wins.",
    "sport/swimming.txt": "Swimmers race freestyle, backstroke, breaststroke and butterfly "
    "in a pool, turning at each wall to start the next length.",
}

PAGE = """<!doctype html>
<html><head><title>Volcanoes</title><style>body { font: 14px serif }</style></head>
<body><h1>Volcanoes</h1>
<p>A volcano erupts when molten rock called magma rises through the crust.
Lava flows and ash clouds follow, and new land can form.</p>
<script>console.log("not part of the text")</script></body></html>
"""

RECORDS = [
    {
        "id": "faq-passwords",
        "text": "How do I reset my password? Use the forgot password "
        "link on the sign-in page and follow the email.",
        "section": "accounts",
    },
    {
        "id": "faq-refunds",
        "text": "Refunds are paid back to the original card within five "
        "working days of the return arriving.",
        "section": "billing",
    },
    {
        "id": "faq-shipping",
        "text": "Parcels ship within two days; express delivery arrives the next morning.",
        "section": "orders",
    },
]

IMAGES: dict[str, tuple[str, tuple[int, int, int], str]] = {
    # name: (shape, colour, caption)
    "images/red-circle.png": ("circle", (220, 30, 30), "a red circle on white"),
    "images/blue-square.png": ("square", (30, 60, 220), "a blue square on white"),
    "images/green-triangle.png": ("triangle", (30, 170, 60), "a green triangle on white"),
    "images/yellow-sun.png": ("circle", (250, 210, 20), "a yellow sun"),
    "images/night-sky.jpg": ("night", (10, 10, 50), "stars in a dark night sky"),
    "images/stripes.png": ("stripes", (240, 120, 0), "orange stripes"),
}

# (query, the document id it should find first)
EXPECTED = [
    ("a cat purrs and sleeps in the sun", "animals/cats.md"),
    ("how is bread dough baked in an oven", "food/bread.md"),
    ("reset my password", "faq-passwords"),
    ("magma and lava from a volcano", "volcano.html"),
]


def _draw(shape: str, colour: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (128, 128), "white")
    d = ImageDraw.Draw(image)
    if shape == "circle":
        d.ellipse((24, 24, 104, 104), fill=colour)
    elif shape == "square":
        d.rectangle((28, 28, 100, 100), fill=colour)
    elif shape == "triangle":
        d.polygon([(64, 20), (110, 104), (18, 104)], fill=colour)
    elif shape == "night":
        d.rectangle((0, 0, 128, 128), fill=colour)
        for i in range(40):
            x, y = (i * 37) % 128, (i * 53) % 128
            d.point((x, y), fill="white")
    else:
        for x in range(0, 128, 16):
            d.rectangle((x, 0, x + 7, 128), fill=colour)
    return image


def write_sample(folder: str | Path) -> Path:
    """Write the sample corpus into ``folder`` (created if needed); returns the folder."""
    root = Path(folder)
    for name, text in DOCUMENTS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    (root / "volcano.html").write_text(PAGE, encoding="utf-8")
    with open(root / "faq.jsonl", "w", encoding="utf-8") as f:
        for record in RECORDS:
            f.write(json.dumps(record) + "\n")
    for name, (shape, colour, caption) in IMAGES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = _draw(shape, colour)
        image.save(path, format="JPEG" if name.endswith(".jpg") else "PNG")
        path.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    return root
