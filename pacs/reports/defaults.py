"""The templates a new archive starts with (Vietnamese first), one per common modality.

They are seeded once by the migration that creates the table; from then on they are
runtime data that radiologists and administrators edit through the API.
"""

from __future__ import annotations

DEFAULT_TEMPLATES: list[dict[str, str]] = [
    {
        "name": "CT sọ não không tiêm thuốc",
        "modality": "CT",
        "body_part": "HEAD",
        "findings": (
            "Nhu mô não hai bán cầu không thấy tổn thương khu trú.\n"
            "Hệ thống não thất không giãn, đường giữa không di lệch.\n"
            "Không thấy máu tụ trong và ngoài trục.\nXương vòm sọ không thấy đường vỡ."
        ),
        "conclusion": "Hiện tại chưa phát hiện tổn thương bất thường trên phim CT sọ não.",
        "recommendations": "",
    },
    {
        "name": "CT ngực",
        "modality": "CT",
        "body_part": "CHEST",
        "findings": (
            "Nhu mô hai phổi không thấy nốt, đám mờ bất thường.\n"
            "Trung thất không thấy hạch to. Không tràn dịch, tràn khí màng phổi."
        ),
        "conclusion": "Chưa phát hiện bất thường trên phim CT ngực.",
        "recommendations": "",
    },
    {
        "name": "MRI sọ não",
        "modality": "MR",
        "body_part": "HEAD",
        "findings": (
            "Nhu mô não không thấy bất thường tín hiệu trên các chuỗi xung.\n"
            "Không thấy hạn chế khuếch tán. Hệ thống não thất cân đối."
        ),
        "conclusion": "Hình ảnh cộng hưởng từ sọ não trong giới hạn bình thường.",
        "recommendations": "",
    },
    {
        "name": "X-quang ngực thẳng (CR)",
        "modality": "CR",
        "body_part": "CHEST",
        "findings": (
            "Hai trường phổi sáng đều, không thấy đám mờ khu trú.\n"
            "Bóng tim không to. Góc sườn hoành hai bên nhọn."
        ),
        "conclusion": "Hiện tại chưa thấy tổn thương tim phổi trên phim.",
        "recommendations": "",
    },
    {
        "name": "X-quang ngực thẳng (DX)",
        "modality": "DX",
        "body_part": "CHEST",
        "findings": (
            "Hai trường phổi sáng đều, không thấy đám mờ khu trú.\n"
            "Bóng tim không to. Góc sườn hoành hai bên nhọn."
        ),
        "conclusion": "Hiện tại chưa thấy tổn thương tim phổi trên phim.",
        "recommendations": "",
    },
    {
        "name": "Siêu âm ổ bụng tổng quát",
        "modality": "US",
        "body_part": "ABDOMEN",
        "findings": (
            "Gan: kích thước bình thường, nhu mô đều, không thấy khối khu trú.\n"
            "Túi mật: thành mỏng, không sỏi. Đường mật không giãn.\n"
            "Tụy, lách: bình thường. Hai thận: không sỏi, không ứ nước.\n"
            "Bàng quang: thành đều. Không có dịch tự do ổ bụng."
        ),
        "conclusion": "Hiện tại chưa phát hiện bất thường trên siêu âm ổ bụng.",
        "recommendations": "",
    },
    {
        "name": "Chụp X-quang tuyến vú",
        "modality": "MG",
        "body_part": "BREAST",
        "findings": (
            "Mô tuyến vú hai bên phân bố đối xứng, mật độ loại B.\n"
            "Không thấy khối, vi vôi hóa nghi ngờ hay co kéo cấu trúc."
        ),
        "conclusion": "BI-RADS 1: không thấy bất thường.",
        "recommendations": "Tầm soát định kỳ theo lịch.",
    },
]
