"""The sidebar: rooms with their live phase and remaining time, messages with an unread badge,
stats, and the people FocusMate sees on the local network."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from focusmate.timer import Status
from ui.theme import palette_is_dark, phase_color
from ui.viewmodels.app import AppViewModel, RoomListModel, RoomRow

MESSAGES, STATS = "messages", "stats"


class RoomDelegate(QStyledItemDelegate):
    """Two lines per room — name, then phase and time — behind a dot in the phase's colour."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        height = option.fontMetrics.height()
        return QSize(200, int(height * 2 + height * 1.1))

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        row = index.data(RoomListModel.RowRole)
        if not isinstance(row, RoomRow):
            super().paint(painter, option, index)
            return
        painter.save()
        style = option.widget.style() if option.widget else None
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter,
                                option.widget)  # fmt: skip
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        rect: QRect = option.rect.adjusted(8, 4, -8, -4)
        metrics = option.fontMetrics
        dot = max(8, metrics.height() // 2)
        dark = palette_is_dark(option.palette)
        colour = QColor(option.palette.color(QPalette.ColorRole.PlaceholderText))
        if row.phase is not None and row.status is Status.RUNNING:
            colour = phase_color(row.phase, dark=dark)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawEllipse(rect.left(), rect.top() + (metrics.height() - dot) // 2, dot, dot)
        text_left = rect.left() + dot + 8
        painter.setPen(option.palette.color(text_role))
        name_font = option.font
        name_font.setBold(True)
        painter.setFont(name_font)
        name = metrics.elidedText(row.name, Qt.TextElideMode.ElideRight, rect.right() - text_left)
        painter.drawText(text_left, rect.top() + metrics.ascent(), name)
        painter.setFont(option.font)
        if not selected:
            painter.setPen(option.palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(text_left, rect.top() + metrics.height() + metrics.ascent(), row.summary)
        painter.restore()


class Sidebar(QWidget):
    """Navigation. Emits what the user picked; the window decides what to show."""

    roomPicked = Signal(str)
    pagePicked = Signal(str)  # MESSAGES or STATS
    createRoom = Signal()
    joinRoom = Signal()

    def __init__(self, vm: AppViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.rooms = QListView()
        self.rooms.setModel(vm.rooms)
        self.rooms.setItemDelegate(RoomDelegate(self.rooms))
        self.rooms.setAccessibleName("Rooms")
        self.rooms.setUniformItemSizes(True)
        self.rooms.selectionModel().currentChanged.connect(self._room_changed)
        vm.rooms.modelReset.connect(self._restore_selection)
        create = QPushButton("Create room")
        create.setAccessibleName("Create room")
        create.setToolTip("Create a room (Ctrl+N)")
        create.clicked.connect(self.createRoom)
        join = QPushButton("Join room")
        join.setAccessibleName("Join room")
        join.setToolTip("Join a room by link or code (Ctrl+J)")
        join.clicked.connect(self.joinRoom)
        buttons = QHBoxLayout()
        buttons.addWidget(create)
        buttons.addWidget(join)
        self.pages = QListWidget()
        self.pages.setAccessibleName("Pages")
        self.messages_item = QListWidgetItem("Messages")
        self.messages_item.setData(Qt.ItemDataRole.UserRole, MESSAGES)
        stats_item = QListWidgetItem("Stats")
        stats_item.setData(Qt.ItemDataRole.UserRole, STATS)
        self.pages.addItem(self.messages_item)
        self.pages.addItem(stats_item)
        self.pages.setFixedHeight(self.pages.sizeHintForRow(0) * 2 + 2 * self.pages.frameWidth())
        self.pages.itemClicked.connect(self._page_clicked)
        self.pages.itemActivated.connect(self._page_clicked)  # Enter, for keyboard users
        self.peers = QListWidget()
        self.peers.setAccessibleName("People on your network")
        vm.peersChanged.connect(self.show_peers)
        column = QVBoxLayout(self)
        column.addWidget(_heading("Rooms"))
        column.addWidget(self.rooms, 3)
        column.addLayout(buttons)
        column.addSpacing(8)
        column.addWidget(self.pages)
        column.addSpacing(8)
        column.addWidget(_heading("On your network"))
        column.addWidget(self.peers, 1)
        self.show_peers()
        self.set_unread(0)

    def select_room(self, room_id: str) -> None:
        row = self.vm.rooms.row_of(room_id)
        if row >= 0:
            self.pages.clearSelection()
            self.rooms.setCurrentIndex(self.vm.rooms.index(row))

    def select_page(self, name: str) -> None:
        """Highlight MESSAGES or STATS (shown by a shortcut or the menu, not a click here)."""
        self.rooms.clearSelection()
        self.rooms.setCurrentIndex(QModelIndex())
        for row in range(self.pages.count()):
            item = self.pages.item(row)
            item.setSelected(item.data(Qt.ItemDataRole.UserRole) == name)

    def set_unread(self, count: int) -> None:
        self.messages_item.setText(f"Messages  ({count})" if count else "Messages")
        self.messages_item.setData(
            Qt.ItemDataRole.AccessibleTextRole,
            f"Messages, {count} unread" if count else "Messages",
        )

    def show_peers(self) -> None:
        self.peers.clear()
        peers = self.vm.lan_peers()
        for peer in peers:
            offers = f" · offers {', '.join(peer.offers)}" if peer.offers else ""
            self.peers.addItem(f"● {peer.name}{offers}")
        if not peers:
            item = QListWidgetItem("Nobody yet")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.peers.addItem(item)

    def _room_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        room_id = current.data(RoomListModel.RoomIdRole)
        if isinstance(room_id, str):
            self.pages.clearSelection()
            self.roomPicked.emit(room_id)

    def _restore_selection(self) -> None:
        if self.vm.current_room is not None:
            self.select_room(self.vm.current_room)

    def _page_clicked(self, item: QListWidgetItem) -> None:
        self.rooms.clearSelection()
        self.rooms.setCurrentIndex(QModelIndex())
        self.pagePicked.emit(str(item.data(Qt.ItemDataRole.UserRole)))


def _heading(text: str) -> QLabel:
    label = QLabel(text.upper())
    font = label.font()
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 0.85)
    label.setFont(font)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label
