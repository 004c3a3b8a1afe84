// Vietnamese and English, chosen from the browser and switchable (kept in localStorage).
const STRINGS = {
  vi: {
    login: 'Đăng nhập', username: 'Tên đăng nhập', password: 'Mật khẩu', otp: 'Mã xác thực (nếu có)',
    logout: 'Đăng xuất', badLogin: 'Sai tên đăng nhập hoặc mật khẩu', studies: 'Danh sách ca chụp',
    name: 'Họ tên', patientId: 'Mã BN / CCCD', accession: 'Số phiếu', date: 'Ngày chụp', modality: 'Loại máy',
    description: 'Mô tả', series: 'Loạt', images: 'Ảnh', search: 'Tìm', today: 'Hôm nay', yesterday: 'Hôm qua',
    last7: '7 ngày', anyDate: 'Mọi ngày', from: 'Từ', to: 'Đến', prev: 'Trước', next: 'Sau', open: 'Mở',
    openOhif: 'Mở bằng OHIF', noStudies: 'Không có ca chụp nào', back: 'Danh sách', tags: 'Thẻ DICOM',
    reset: 'Đặt lại', invert: 'Đảo màu', rotate: 'Xoay', flipH: 'Lật ngang', flipV: 'Lật dọc',
    cine: 'Phát', length: 'Đo dài', angle: 'Đo góc', rect: 'Vùng chữ nhật', ellipse: 'Vùng elip',
    wl: 'Cửa sổ', pan: 'Di chuyển', zoom: 'Phóng to', layout: 'Bố cục', mpr: 'MPR', loading: 'Đang tải…',
    error: 'Lỗi', slice: 'Lát', lang: 'English', noImages: 'Ca chụp không có ảnh',
    brain: 'Não', lung: 'Phổi', bone: 'Xương', abdomen: 'Bụng', mediastinum: 'Trung thất',
  },
  en: {
    login: 'Log in', username: 'User name', password: 'Password', otp: 'One-time code (if any)',
    logout: 'Log out', badLogin: 'Wrong user name or password', studies: 'Studies',
    name: 'Name', patientId: 'Patient / citizen ID', accession: 'Accession', date: 'Date', modality: 'Modality',
    description: 'Description', series: 'Series', images: 'Images', search: 'Search', today: 'Today',
    yesterday: 'Yesterday', last7: 'Last 7 days', anyDate: 'Any date', from: 'From', to: 'To', prev: 'Previous',
    next: 'Next', open: 'Open', openOhif: 'Open in OHIF', noStudies: 'No studies', back: 'Study list',
    tags: 'DICOM tags', reset: 'Reset', invert: 'Invert', rotate: 'Rotate', flipH: 'Flip H', flipV: 'Flip V',
    cine: 'Cine', length: 'Length', angle: 'Angle', rect: 'Rectangle', ellipse: 'Ellipse', wl: 'W/L',
    pan: 'Pan', zoom: 'Zoom', layout: 'Layout', mpr: 'MPR', loading: 'Loading…', error: 'Error',
    slice: 'Slice', lang: 'Tiếng Việt', noImages: 'The study has no images',
    brain: 'Brain', lung: 'Lung', bone: 'Bone', abdomen: 'Abdomen', mediastinum: 'Mediastinum',
  },
};

let lang = localStorage.getItem('pacs.lang') || ((navigator.language || 'vi').startsWith('vi') ? 'vi' : 'en');

export function t(key) {
  return STRINGS[lang][key] ?? key;
}

export function currentLang() {
  return lang;
}

export function toggleLang() {
  lang = lang === 'vi' ? 'en' : 'vi';
  localStorage.setItem('pacs.lang', lang);
  document.documentElement.lang = lang;
}
