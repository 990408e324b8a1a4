"""Report de-identification: identifiers go, clinical content stays, only counts come back."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medrep.data.reports import ReportParser
from medrep.data.scrub import SCRUB_CATEGORIES, Scrubber
from medrep.data.synthetic import WorldSpec, plan_world, report_rng, write_report
from tests.helpers import compose_config

# (text, the identifying spans in it, expected counts)
CASES = [
    (
        "Findings discussed with Dr. John A. Smith at 10:30 a.m. on 03/14/2021 by telephone.",
        ["John", "Smith", "10:30", "03/14/2021"],
        {"name": 1, "time": 1, "date": 1},
    ),
    ("DR. SMITH WAS NOTIFIED AT 3 PM.", ["SMITH", "3 PM"], {"name": 1, "time": 1}),
    ("Electronically signed by: Jane Doe, MD", ["Jane", "Doe"], {"name": 1}),
    ("Attending Radiologist: Robert Jones", ["Robert", "Jones"], {"name": 1}),
    ("Mrs. O'Neil and Mr Brown-Smith were informed.", ["O'Neil", "Brown-Smith"], {"name": 2}),
    (
        "MRN: 00123456. Accession # A1234567. Order number 55512.",
        ["00123456", "A1234567", "55512"],
        {"id": 3},
    ),
    ("Unlabelled number 123456789 in the header.", ["123456789"], {"id": 1}),
    (
        "Pager 12345. Call (617) 555-1234 or ext. 4321.",
        ["12345", "555-1234", "4321"],
        {"phone": 3},
    ),
    (
        "Compared with March 14, 2021, Jan 2020, 14 March 2021, 2021-03-14 and 14.03.2021.",
        ["March 14", "Jan 2020", "14 March", "2021-03-14", "14.03.2021"],
        {"date": 5},
    ),
    ("Prior study on 3/14 and dated 11/2.", ["3/14", "11/2"], {"date": 2}),
    ("Film taken at 1430 hours.", ["1430"], {"time": 1}),
    (
        "92-year-old woman. Age: 95. 101 y/o man. 93F with cough. aged 91.",
        ["92", "95", "101", "93", "91"],
        {"age": 5},
    ),
    # the real-notes and planted gaps of issue 18: dates without a year, DD-MON-YYYY,
    # international phones, SSNs, e-mail, street addresses with a town, ages over 89 in words
    (
        "Seen 13 February, again on 28th March and the 3rd of May. Prior 14-MAR-2019.",
        ["13 February", "28th March", "3rd of May", "14-MAR-2019"],
        {"date": 4},
    ),
    ("Call +44 20 7946 0958 or +33 (0)1 42 68 53 00.", ["7946", "42 68"], {"phone": 2}),
    ("SSN 123-45-6789 on file.", ["123-45-6789"], {"id": 1}),
    ("Results to jane.doe+cxr@hospital.example.org today.", ["jane.doe", "hospital"], {"email": 1}),
    (
        "Lives at 221B Baker Street, London with family.",
        ["221B", "Baker", "London"],
        {"address": 1},
    ),
    (
        "A ninety-two-year-old woman; her mother is one hundred and one years old.",
        ["ninety-two", "one hundred and one"],
        {"age": 2},
    ),
    # places and institutions (issue 18): a gazetteer name in a place's context, any capitalised
    # words after a place cue, a named institution (not a kind of one)
    (
        "Recently returned from Lagos, Nigeria. Lives in Little Snoring. HOLIDAY IN SPAIN.",
        ["Lagos", "Nigeria", "Little Snoring", "SPAIN"],
        {"geo": 4},
    ),
    (
        "Transferred from Massachusetts General Hospital; seen at Mayo Clinic and the Royal "
        "Infirmary of Edinburgh, not at the outside hospital.",
        ["Massachusetts", "Mayo", "Royal Infirmary", "Edinburgh"],
        # "Mayo Clinic and the Royal Infirmary..." is one span ("and" joins "Brigham and
        # Women's Hospital")
        {"institution": 2},
    ),
    (
        "Patient name: SHAH, Ingrid. Verified by R. Shah, MBBS FRCR. DR DLAMINI informed.",
        ["SHAH", "Ingrid", "R. Shah", "DLAMINI"],
        {"name": 3},
    ),
    (
        "NHS Number 649 916 7525. Please phone x2311. Compared with 09SEP2001 and 14.11.01.",
        ["649 916", "2311", "09SEP2001", "14.11.01"],
        {"id": 1, "phone": 1, "date": 2},
    ),
    (
        "Flat 3, 12 Oak Rd., Leeds LS1 4AB. 52 MAPLE ROAD, KALAMAZOO, MI 81862.",
        ["Oak Rd", "Leeds", "LS1", "MAPLE", "KALAMAZOO", "81862"],
        {"address": 2},
    ),
    # the classes the holdout split's misses showed after its first round of fixes
    (
        "DISCHARGED MON NOV 9. Seen Friday, February 4, 2011 and Wed 20 Sept 2017. "
        "Drain inserted on the 16th, and on the 1st inst. Old films of May-22.",
        ["MON", "NOV 9", "Friday", "2011", "Wed", "2017", "16th", "1st", "May-22"],
        {"date": 6},
    ),
    (
        "Called at 22.40. Addendum 02:44: agreed. FILM AT 20H48. Acquired: 1510 on CR.",
        ["22.40", "02:44", "20H48", "1510"],
        {"time": 4},
    ),
    (
        "Secretaries on 07700 136835. Bookings (0)51 522 2318. Contact no. 080-2141 2089. "
        "Radiologist blp. 8176, then local 8550.",
        ["136835", "07700", "522 2318", "2141", "2089", "8176", "8550"],
        {"phone": 5},
    ),
    (
        "OHIP 4852-771-152 XC. Medicare 3021 96628 7. IP No. 4373/19. Exam no. XR-4148400.",
        ["4852", "XC", "96628", "4373/19", "XR-4148400"],
        {"id": 4},
    ),
    (
        "History from her son, Mthembu, Ishita. Relayed to HIGGINBOTHAM H.B., nurse in charge. "
        "PATIENT: YOON Guadalupe  Name: Mdm Kok Leong KAPOOR. cc: Ž.B. ten Brink (GP)",
        ["Mthembu", "Ishita", "HIGGINBOTHAM", "YOON", "Guadalupe", "Kok", "KAPOOR", "Brink"],
        {"name": 5},
    ),
    (
        "Back from Davao, PHILIPPINES. ZANZIBAR RESIDENT. Aged 96Y. Retrieved from National "
        "Hospital Abuja. Copy to the GP surgery, P.O. Box 5590, Springfield, MO 58863.",
        ["Davao", "PHILIPPINES", "ZANZIBAR", "96", "National", "Abuja", "5590", "Springfield"],
        {"geo": 3, "age": 1, "institution": 1, "address": 1},
    ),
    # a house number after "at" is the address's, not a time
    ("Letter to GP at 2259 Clover Way.", ["2259", "Clover"], {"address": 1}),
    # the classes of the holdout2 split's misses (third round)
    (
        "MSH|^~\\&|RIS|RAD|HIS|WARD|201911101450||ORU^R01|MSG48060|P|2.3.1\n"
        "PID|1||5988-5533-32^^^^MR||AL-MANSOORI^REEM||19561127|F\n"
        "OBR|1|881852905-B|RA96-0470286|71046^XR CHEST 2 VIEWS|||200409051303|||||||||"
        "57905^PŌMARE^WIREMU\nOBX|1|TX|&GDT^Report||No effusion.||||||F",
        [
            "201911101450",
            "MSG48060",
            "5988",
            "MANSOORI",
            "REEM",
            "19561127",
            "881852905",
            "0470286",
            "200409051303",
            "57905",
            "WIREMU",
        ],
        {"id": 5, "date": 3, "name": 2},
    ),
    # HL7's own segment separator is a carriage return; a field's repetitions each go
    (
        "MSH|^~\\&|RIS|RAD|HIS|WARD|201911101450||ORU^R01|MSG48060|P|2.3.1\r"
        "PID|1||5988-5533-32^^^^MR~123456^^^SSA^SS||DOE^JOHN~ROE^JANE||19561127|F\r\n"
        "OBX|1|TX|&GDT^Report||No effusion.||||||F",
        ["201911101450", "MSG48060", "5988", "123456", "DOE", "JOHN", "ROE", "JANE", "19561127"],
        {"id": 3, "date": 2, "name": 2},
    ),
    (
        "CT of 23 VII 2024 and 04.II.2019; staging CT X/2003 and Nov/2021; since the fourth of "
        "July and February the fifteenth; Wednesday, 9 December 2009; era date H25.09.23.",
        [
            "VII",
            "II.2019",
            "X/2003",
            "Nov/2021",
            "fourth",
            "fifteenth",
            "Wednesday",
            "December",
            "H25",
        ],
        {"date": 8},
    ),
    (
        "Fall at home at 08u50. Called at kl. 20.48, read at 09h, final read 0912Z, sent 6:30 in "
        "the morning.",
        ["08u50", "20.48", "09h", "0912", "6:30", "morning"],
        {"time": 5},
    ),
    (
        "Mailing address: 1-9-20 Kitasenzoku, Ota-ku, Tokyo 145-0042 / Diagnosis code: J18.9. "
        "Outside images from King Fahad Medical City and from Universitätsspital Zürich.",
        ["Kitasenzoku", "Tokyo", "King Fahad", "Universitätsspital"],
        {"address": 1, "institution": 2},
    ),
    (
        "Req Phys: PRUITT,EARL J      Pat Loc: ER. Dear YAMADA Kazuhiro, thank you. Sex/Age: male, "
        "97. Aet. 93.",
        ["PRUITT", "EARL", "YAMADA", "Kazuhiro", "97", "93"],
        {"name": 2, "age": 2},
    ),
]

CLINICAL = [
    "No pleural effusion.",
    "No pleural effusion or pneumothorax is seen.",
    "There is a 5.2 x 3.1 mm nodule in the right upper lobe.",
    "Compression deformity of the T7 vertebra.",
    "The endotracheal tube tip is 2.8 cm above the carina.",
    "Degenerative change at C5-6 and L4-L5.",
    "A 14F pigtail catheter and a 28 Fr chest tube.",
    "Lordotic projection at 90 degrees; fractures of the left 4th-6th ribs.",
    "Heart size is normal; 2/3 of the lung is clear.",
    "45-year-old man; 89 year old woman; aged 60.",
    "May represent atelectasis. Opacity in March is unchanged.",
    "PA and lateral views. MR of the chest. MS history. Prior CT in 2019.",
    "Right PICC tip in the cavoatrial junction, 12-lead ECG leads overlie the chest.",
    "SVC. IVC. The patient is status post CABG.",
    "Ninety percent of the lung is aerated; 3 views of the chest; 2 of 3 ribs; 1 May represent.",
    "Level of the 4th rib. Grade 2 of 4. An eighty-nine-year-old man.",
    "Tube 12 Fr; 10 mm step; 100 mL; T4-T5; 3 cm from the 2nd rib.",
    "Density +120 HU; shift +1.25 cm; rotation +12.5 degrees.",
    "1. 2 MAY REPRESENT ATELECTASIS. 3 Prior Ct Findings.",
    "Lives at home. The Heart is normal at 12 Oak level.",
    # town names that are clinical words, eponyms, devices, placeholders, kinds of institution
    "Normal heart size. Clear lungs. Mobile chest radiograph. Reading room.",
    "Hampton hump. Poland syndrome. Foley catheter. Suspected Colon Cancer.",
    "Dr. XXXX reviewed. XXXX-year-old. Transferred from the outside hospital.",
    "Hospital No: pending. Inter-hospital transfer. Chest Clinic follow-up.",
    "DUTY RADIOLOGIST BEEPER. DIFFUSE RETICULATION, ILO PROFUSION 2/3. DATE UNKNOWN.",
    # a patient label before clinical words, a day with a suffix before a noun, a town in
    # capitals after a comma in mixed-case text ("Along" is a town in India), a pronoun
    "Patient: Known COPD, on home oxygen. Patient: Mild CHF. PATIENT: NEW ONSET SOB.",
    "Fracture on the 4th rib, seen on the 2nd attempt.",
    "Indication: ketoacidosis, ALONG W/ a change in mental status since the morning.",
    "MRN pending. NO ACUTE DISEASE. I have reviewed the film.",
    # eponymous criteria with a place's name, codes, vertebral levels, the HIPAA age band,
    # Roman numerals that are grades, a duration
    "Moderate ARDS (Berlin definition); Bethesda category III; Buffalo chest after sternotomy.",
    "SNOMED CT 233604007; ICD-10 J18.9; degenerative change at T10-11. AGE 90+, frail.",
    "Bosniak IIF cyst, Lung-RADS 4A, grade II of IV, for 24h. Dear Colleague, cc: Room 8.09.",
    # what a review of the third round found eaten, each fixed
    "90Y radioembolisation. O2 sat 92-94% on RA. Fractures of the 4th, 5th and 6th ribs.",
    "May the second nodule represent scarring? Family history: Mother: Breast cancer.",
    "Patient: COPD Exacerbation. Patient: Intubated, Sedated. Admitted from: Home.",
    "Final read: Normal study. MRS Choline peak. MAJ FISSURE THICKENED. SIGMOID COL LESION.",
    "Local 2000 mL, Internal 1234 units. Order 500 mg amoxicillin. Troponin repeat at 6h.",
    "Heparin 5 X 2000 IU. CT 12 V 2019. Male, 180 lbs. Dose 2000-05. IEC-60601. NG-12345 tube.",
]


@pytest.mark.parametrize(("text", "spans", "counts"), CASES)
def test_identifiers_are_replaced_and_counted(
    text: str, spans: list[str], counts: dict[str, int]
) -> None:
    result = Scrubber().scrub(text)
    for span in spans:
        assert span not in result.text, (span, result.text)
        assert span not in repr(result)
    assert {k: v for k, v in result.counts.items() if v} == counts
    assert result.total == sum(counts.values())
    assert "___" in result.text


@pytest.mark.parametrize("text", CLINICAL)
def test_clinical_content_is_untouched(text: str) -> None:
    result = Scrubber().scrub(text)
    assert result.text == text
    assert result.total == 0


def test_titles_stay_and_the_parser_drops_the_placeholder() -> None:
    scrubbed = Scrubber().scrub("IMPRESSION: No pleural effusion. Dr. Smith was paged at 10:30.")
    assert scrubbed.text == "IMPRESSION: No pleural effusion. Dr. ___ was paged at ___."
    assert ReportParser().sentences(scrubbed.text) == [
        "No pleural effusion.",
        "Dr. was paged at.",
    ]


def test_configuration() -> None:
    text = "Dr. Smith saw the 95-year-old on 03/14/2021."
    assert Scrubber(enabled=False).scrub(text).text == text
    assert Scrubber(enabled=False).scrub(text).total == 0
    only_dates = Scrubber(categories=["date"]).scrub(text)
    assert only_dates.text == "Dr. Smith saw the 95-year-old on ___."
    assert set(only_dates.counts) == {"date"}
    assert Scrubber(max_age=100).scrub(text).counts["age"] == 0
    assert Scrubber(replacement="[REMOVED]").scrub(text).text.count("[REMOVED]") == 3
    assert Scrubber(titles=["Prof."]).scrub(text).counts["name"] == 0
    with pytest.raises(ValueError, match="unknown scrub categories"):
        Scrubber(categories=["names"])
    with pytest.raises(ValueError, match="min_id_digits"):
        Scrubber(min_id_digits=3)


def test_synthetic_reports_pass_unchanged() -> None:
    """The generator writes MIMIC-style reports with `___` placeholders and no identifiers."""
    spec = WorldSpec(n_patients=60)
    scrubber = Scrubber()
    for study in plan_world(spec).studies:
        text = write_report(study, report_rng(spec, study)).text
        result = scrubber.scrub(text)
        assert result.text == text and result.total == 0


def test_config_group_builds_the_default_scrubber(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    cfg = compose_config(tmp_path)
    assert instantiate(cfg.reports.scrubber) == Scrubber()
    assert tuple(cfg.reports.scrubber.categories) == SCRUB_CATEGORIES


# built once: a Scrubber compiles its rules and reads the place list when made
_SCRUBBER = Scrubber()
_CLINICAL_TOKENS = st.one_of(
    # month names are left out: "March 12" is a date whatever follows it; so are the towns
    # that are eponyms only before their medical word ("Hampton hump"; "at Hampton" is a place),
    # "Hospital" ("Findings Hospital" reads as a named one), the cues before a name ("Dear",
    # "cc:") and a SNOMED CT number without its "SNOMED CT"
    st.sampled_from(
        [
            w
            for w in " ".join(CLINICAL).replace(".", " ").replace(";", " ").split()
            if w.strip("(),")
            not in (
                "May",
                "March",
                "Hampton",
                "Poland",
                "Foley",
                "Hospital",
                "Berlin",
                "Bethesda",
                "Buffalo",
                "Dear",
                "cc:",
                "233604007",
            )  # fmt: skip
        ]
    ),
    st.from_regex(r"[0-9]{1,2}\.[0-9] (cm|mm)", fullmatch=True),
    st.from_regex(r"[0-9]\.[0-9] x [0-9]\.[0-9] mm", fullmatch=True),
    st.from_regex(r"[TCL][0-9]{1,2}", fullmatch=True),
    st.from_regex(r"[1-8][0-9] (years?|yo)", fullmatch=True),
    st.sampled_from([".", ",", "No", "There is", "The", "at", "above", "measuring"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_CLINICAL_TOKENS, max_size=30).map(" ".join))
def test_clinical_prose_survives(text: str) -> None:
    assert _SCRUBBER.scrub(text).text == text


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(text: str) -> None:
    result = _SCRUBBER.scrub(text)
    assert set(result.counts) == set(SCRUB_CATEGORIES)
    assert all(n >= 0 for n in result.counts.values())
    assert result.total == 0 or "___" in result.text
