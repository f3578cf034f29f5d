"""Vietnamese and English: the language from the browser (or the reader's choice), dates
and times in the site's time zone, numbers and dates as each language writes them.

Vietnamese readers write 25/11/2026 14:58:03 (day first, 24 hours) and 1.234,5 (dot for
thousands, comma for decimals). Messages are keyed by their English text; a Vietnamese
message missing from the table shows in English (a test keeps the table complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")
DEFAULT_LANG: Lang = "vi"
LANG_COOKIE = "qrgate_lang"

VI: dict[str, str] = {
    # navigation and frame
    "Gates": "Cổng",
    "Events": "Sự kiện",
    "People": "Người",
    "On site": "Đang có mặt",
    "Attendance": "Điểm danh",
    "Contacts": "Tiếp xúc",
    "Gaps": "Sự kiện thiếu",
    "Rejects": "Tin bị loại",
    "Commands": "Lệnh",
    "Accounts": "Tài khoản",
    "Audit log": "Nhật ký truy cập",
    "Log in": "Đăng nhập",
    "Log out": "Đăng xuất",
    "Signed in as": "Đăng nhập với",
    "Menu": "Danh mục",
    "Times in": "Giờ theo",
    "qrgate centre": "Trung tâm qrgate",
    # login
    "Name": "Tên",
    "Password": "Mật khẩu",
    "Wrong name or password.": "Sai tên hoặc mật khẩu.",
    "Too many failed logins. Try again in {minutes} min.": (
        "Đăng nhập sai quá nhiều lần. Thử lại sau {minutes} phút."
    ),
    "The form has expired; please try again.": "Biểu mẫu đã hết hạn, vui lòng thử lại.",
    "You may not see this page.": "Bạn không có quyền xem trang này.",
    "Page not found.": "Không tìm thấy trang.",
    # gates
    "online": "trực tuyến",
    "offline": "mất kết nối",
    "stopped": "đã dừng",
    "stale": "không báo cáo",
    "unknown": "chưa rõ",
    "last event": "sự kiện cuối",
    "events": "sự kiện",
    "missing": "thiếu",
    "outbox": "hàng đợi",
    "camera": "camera",
    "decode": "giải mã",
    "CPU": "CPU",
    "mode": "chế độ",
    "faults": "lỗi",
    "normal": "bình thường",
    "lockdown": "phong tỏa",
    "emergency": "khẩn cấp",
    "open": "mở cổng",
    "never": "chưa có",
    "ago": "trước",
    "The monitor is not connected to the broker: gate states may be out of date.": (
        "Máy giám sát chưa kết nối tới broker: trạng thái cổng có thể đã cũ."
    ),
    "No gate has reported yet.": "Chưa có cổng nào báo cáo.",
    "Authenticated": "Đã xác thực",
    "its events carry the signature of its enrolled key, checked before they are stored.": (
        "sự kiện của cổng có chữ ký bằng khóa đã đăng ký, được kiểm tra trước khi lưu."
    ),
    "Not authenticated": "Chưa xác thực",
    "no key enrolled: its events are stored, but nothing proves they came from this gate.": (
        "cổng chưa đăng ký khóa: sự kiện vẫn được lưu nhưng không có gì chứng minh"
        " chúng đến từ cổng này."
    ),
    "Events set aside": "Sự kiện bị loại",
    "no key enrolled, and the monitor keeps only authenticated events:"
    " this gate's events are not stored.": (
        "cổng chưa đăng ký khóa, mà máy giám sát chỉ lưu sự kiện đã xác thực:"
        " sự kiện của cổng này không được lưu."
    ),
    "Events stored earlier, not authenticated: {count}.": (
        "Sự kiện lưu trước đó, chưa xác thực: {count}."
    ),
    "key": "khóa",
    "enroll its key with": "đăng ký khóa của cổng bằng lệnh",
    "{count} gates": "{count} cổng",
    # events
    "time": "thời gian",
    "site": "khu vực",
    "gate": "cổng",
    "seq": "số thứ tự",
    "direction": "hướng",
    "type": "loại",
    "result": "kết quả",
    "reason": "lý do",
    "credential": "giấy tờ",
    "subject": "mã người",
    "name": "họ tên",
    "latency ms": "độ trễ ms",
    "health certificate": "chứng nhận y tế",
    "country": "quốc gia",
    "vaccination": "tiêm chủng",
    "test": "xét nghiệm",
    "recovery": "đã khỏi bệnh",
    "Issuing country of the health certificate: two letters, as VN": (
        "Quốc gia cấp chứng nhận y tế: hai chữ cái, như VN"
    ),
    "in": "vào",
    "out": "ra",
    "granted": "cho qua",
    "denied": "từ chối",
    "any": "tất cả",
    "from": "từ",
    "to": "đến",
    "Filter": "Lọc",
    "Clear": "Xóa lọc",
    "Older": "Cũ hơn",
    "Newest": "Mới nhất",
    "Live": "Trực tiếp",
    "No events.": "Không có sự kiện.",
    "Download CSV": "Tải CSV",
    # people
    "Search by name or subject": "Tìm theo họ tên hoặc mã người",
    "Search": "Tìm",
    "No one found.": "Không tìm thấy ai.",
    "last seen": "lần cuối",
    "Stays": "Các lần có mặt",
    "Passages": "Lượt qua cổng",
    "Gates used": "Cổng đã dùng",
    "Contacts of this person": "Người tiếp xúc",
    "entered": "vào lúc",
    "left": "ra lúc",
    "still inside": "vẫn đang ở trong",
    "duration": "thời gian",
    "times": "số lần",
    "Nobody passed a gate in this period.": "Không ai qua cổng trong khoảng thời gian này.",
    "Period": "Khoảng thời gian",
    # reports
    "On site now": "Đang có mặt",
    "came in at gate": "vào qua cổng",
    "since": "từ lúc",
    "for": "trong",
    "people on site": "người đang có mặt",
    "came in with a health certificate": "vào cổng với chứng nhận y tế",
    "no health certificate": "không có chứng nhận y tế",
    "Day": "Ngày",
    "first in": "vào đầu tiên",
    "last out": "ra cuối cùng",
    "time on site": "thời gian có mặt",
    "inside at start": "có mặt đầu ngày",
    "inside at end": "có mặt cuối ngày",
    "yes": "có",
    "overlap": "trùng",
    "when": "khi nào",
    "first missing seq": "số thiếu đầu",
    "last missing seq": "số thiếu cuối",
    "No events are missing.": "Không thiếu sự kiện nào.",
    "Ask the gates to send what is missing": "Yêu cầu các cổng gửi lại sự kiện thiếu",
    "asked": "đã yêu cầu",
    "No gate to ask: none is missing events or online.": (
        "Không có cổng nào để yêu cầu: không cổng nào thiếu sự kiện hay đang trực tuyến."
    ),
    "received": "nhận lúc",
    "topic": "chủ đề",
    "payload": "nội dung",
    "Rows": "Số dòng",
    "The first {shown} of {count} rows; the CSV has them all.": (
        "{shown} dòng đầu trong số {count}; tệp CSV có đủ tất cả."
    ),
    "Show": "Xem",
    "Subject": "Mã người",
    "Give a subject to find their contacts.": "Nhập mã người để tìm người tiếp xúc.",
    # commands
    "Send": "Gửi",
    "Command": "Lệnh",
    "whole site": "cả khu vực",
    "seconds open": "số giây mở",
    "Confirm": "Xác nhận",
    "Cancel": "Hủy",
    "Send this command?": "Gửi lệnh này?",
    "Signed with key": "Ký bằng khóa",
    "Replies": "Phản hồi",
    "No reply within {seconds} s.": "Không có phản hồi trong {seconds} giây.",
    "Commands are off: the dashboard was started without the centre's command key.": (
        "Lệnh đang tắt: bảng điều khiển chạy không có khóa ký lệnh của trung tâm."
    ),
    "This confirmation has expired; choose the command again.": (
        "Xác nhận đã hết hạn; hãy chọn lại lệnh."
    ),
    "outcome": "kết quả",
    "detail": "chi tiết",
    # accounts and audit
    "role": "vai trò",
    "viewer": "xem",
    "officer": "cán bộ",
    "admin": "quản trị",
    "created": "tạo lúc",
    "Add or change an account": "Thêm hoặc sửa tài khoản",
    "Save": "Lưu",
    "Remove": "Xóa",
    "who": "ai",
    "action": "hành động",
    "client": "máy",
}

# Relative ages: (seconds in the unit, Vietnamese, English)
AGE_UNITS = ((86400, "ngày", "d"), (3600, "giờ", "h"), (60, "phút", "min"), (1, "giây", "s"))


def negotiate(accept_language: str | None, chosen: str | None = None) -> Lang:
    """The reader's choice (a cookie) if any, else the best of Accept-Language."""
    if chosen in LANGS:
        return chosen
    best: tuple[float, Lang] | None = None
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        quality = quality_of(params)
        if best is None or quality > best[0]:
            best = (quality, primary)
    return best[1] if best and best[0] > 0 else DEFAULT_LANG


def quality_of(params: str) -> float:
    name, _, value = params.strip().partition("=")
    if name.strip() != "q":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Locale:
    """How one reader sees text, times and numbers."""

    lang: Lang
    zone: tzinfo = UTC

    def text(self, message: str, **values: object) -> str:
        translated = VI.get(message, message) if self.lang == "vi" else message
        return translated.format(**values) if values else translated

    def time(self, ms: int | None) -> str:
        if ms is None:
            return ""
        moment = datetime.fromtimestamp(ms / 1000, tz=self.zone)
        pattern = "%d/%m/%Y %H:%M:%S" if self.lang == "vi" else "%Y-%m-%d %H:%M:%S"
        return moment.strftime(pattern)

    def date(self, ms: int) -> str:
        moment = datetime.fromtimestamp(ms / 1000, tz=self.zone)
        return moment.strftime("%d/%m/%Y" if self.lang == "vi" else "%Y-%m-%d")

    def number(self, value: float | int | None, decimals: int = 0) -> str:
        if value is None:
            return ""
        text = f"{value:,.{decimals}f}"
        if self.lang == "vi":
            text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
        return text

    def age(self, ms: int | None, now_ms: int) -> str:
        """How long ago, in the largest unit that fits: "7 phút" / "7 min"."""
        if not ms:
            return self.text("never")
        seconds = max(now_ms - ms, 0) // 1000
        for size, vi, en in AGE_UNITS:
            if seconds >= size or size == 1:
                return f"{self.number(seconds // size)} {vi if self.lang == 'vi' else en}"
        raise AssertionError("unreachable: the last unit always fits")

    def duration(self, seconds: float | None) -> str:
        if seconds is None:
            return ""
        whole = round(seconds)
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
