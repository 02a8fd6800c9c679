"""The Messages page: conversations on the left, the open conversation on the right.

Everything shown comes from :class:`ui.viewmodels.messages.MessagesViewModel`; the messages
themselves and the composer live in :mod:`ui.widgets.message_list`. Badges paint with palette
roles, so they follow light and dark themes; the lock is painted too, as Qt ships no lock icon
outside desktop themes.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, QSignalBlocker, Qt
from PySide6.QtGui import (
    QFont,
    QHideEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ui.viewmodels.messages import ConversationItem, MessagesViewModel
from ui.widgets.message_list import Composer, MessageList, fill_rounded, plain_label, small


def _centred_note(text: str = "") -> QLabel:
    """A wrapped, centred plain-text line for the page's empty states."""
    label = plain_label(text)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return label


def lock_pixmap(widget: QWidget) -> QPixmap:
    """A padlock the height of a line of text, in the widget's text colour."""
    size = widget.fontMetrics().height()
    ratio = widget.devicePixelRatioF()
    pixmap = QPixmap(round(size * ratio), round(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    colour = widget.palette().color(QPalette.ColorRole.WindowText)
    painter.setPen(QPen(colour, max(1.0, size / 9)))
    shackle = QRectF(size * 0.3, size * 0.08, size * 0.4, size * 0.5)
    painter.drawArc(shackle, 0, 180 * 16)
    painter.drawLine(QPointF(shackle.left(), size * 0.33), QPointF(shackle.left(), size * 0.45))
    painter.drawLine(QPointF(shackle.right(), size * 0.33), QPointF(shackle.right(), size * 0.45))
    painter.setBrush(colour)
    painter.drawRoundedRect(QRectF(size * 0.18, size * 0.45, size * 0.64, size * 0.47), 2, 2)
    painter.end()
    return pixmap


class Badge(QLabel):
    """An unread count in a filled pill."""

    def __init__(self, count: int) -> None:
        super().__init__(str(count))
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setForegroundRole(QPalette.ColorRole.HighlightedText)
        margin = self.fontMetrics().height() // 3
        self.setContentsMargins(margin, 0, margin, 0)
        self.setMinimumWidth(self.fontMetrics().height())
        self.setAccessibleName(f"{count} unread")

    def paintEvent(self, event: QPaintEvent) -> None:
        fill_rounded(self, QPalette.ColorRole.Highlight, self.height() / 2)
        super().paintEvent(event)


class ConversationRow(QWidget):
    """Name, time, last message and unread badge of one conversation."""

    def __init__(self, item: ConversationItem) -> None:
        super().__init__()
        self.name = plain_label(item.name)
        bold = QFont(self.name.font())
        bold.setBold(item.unread > 0)
        self.name.setFont(bold)
        self.time = small(plain_label(item.time))
        self.preview = small(plain_label())
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._preview_text = item.preview or "No messages yet"
        top = QHBoxLayout()
        top.addWidget(self.name, 1)
        top.addWidget(self.time)
        bottom = QHBoxLayout()
        bottom.addWidget(self.preview, 1)
        self.badge: Badge | None = None
        if item.unread:
            self.badge = Badge(item.unread)
            bottom.addWidget(self.badge)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(bottom)

    def set_selected(self, selected: bool) -> None:
        """Draw the text in the selection's colours, as a plain list item would."""
        roles = QPalette.ColorRole
        self.name.setForegroundRole(roles.HighlightedText if selected else roles.WindowText)
        muted = roles.HighlightedText if selected else roles.PlaceholderText
        self.time.setForegroundRole(muted)
        self.preview.setForegroundRole(muted)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        metrics = self.preview.fontMetrics()
        width = self.preview.width()
        self.preview.setText(
            metrics.elidedText(self._preview_text, Qt.TextElideMode.ElideRight, width)
        )


class ConversationView(QWidget):
    """Header with the name and the encryption note, the messages, and the composer."""

    def __init__(self) -> None:
        super().__init__()
        self.name = plain_label()
        font = self.name.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.name.setFont(font)
        self.lock = QLabel()
        self.lock.setPixmap(lock_pixmap(self))
        self.lock.setAccessibleName("End-to-end encrypted")
        self.note = small(plain_label())
        self.note.setWordWrap(True)
        self.safety = small(plain_label())
        self.safety.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.safety.setAccessibleName("Safety number")
        self.messages = MessageList()
        self.composer = Composer()
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send message")
        self.send_button.setToolTip("Send (Enter). Shift+Enter starts a new line.")

        note = QVBoxLayout()
        note.setSpacing(0)
        note.addWidget(self.note)
        note.addWidget(self.safety)
        lock_row = QHBoxLayout()
        lock_row.addWidget(self.lock, 0, Qt.AlignmentFlag.AlignTop)
        lock_row.addLayout(note, 1)
        header = QVBoxLayout()
        header.addWidget(self.name)
        header.addLayout(lock_row)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        compose = QHBoxLayout()
        compose.addWidget(self.composer, 1)
        compose.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(line)
        layout.addWidget(self.messages, 1)
        layout.addLayout(compose)
        QWidget.setTabOrder(self.messages, self.composer)
        QWidget.setTabOrder(self.composer, self.send_button)


class MessagesPage(QWidget):
    """Direct messages. Reads conversations only while shown (see ``set_visible``)."""

    def __init__(self, vm: MessagesViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.list = QListWidget()
        self.list.setAccessibleName("Conversations")
        self.no_contacts = _centred_note("Join or create a room to message people in it.")
        self.left = QStackedWidget()
        self.left.addWidget(self.no_contacts)
        self.left.addWidget(self.list)

        self.placeholder = _centred_note()
        self.conversation = ConversationView()
        self.right = QStackedWidget()
        self.right.addWidget(self.placeholder)
        self.right.addWidget(self.conversation)
        self.error_label = plain_label()
        self.error_label.setWordWrap(True)
        self.error_label.setAccessibleName("Message problem")
        self.error_label.hide()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.right, 1)
        right_layout.addWidget(self.error_label)

        splitter = QSplitter()
        splitter.addWidget(self.left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setChildrenCollapsible(False)
        self.left.setMinimumWidth(self.fontMetrics().averageCharWidth() * 22)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        QWidget.setTabOrder(self.list, self.conversation.messages)

        self.list.currentItemChanged.connect(self._picked)
        self.conversation.composer.submitted.connect(self.send)
        self.conversation.send_button.clicked.connect(self.send)
        self.conversation.composer.textChanged.connect(self.error_label.hide)
        vm.changed.connect(self._show_conversations)
        vm.conversationChanged.connect(self._show_conversation)
        vm.error.connect(self._show_error)
        self._show_conversations()
        self._show_conversation()

    # -- visibility -----------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.vm.set_visible(True)

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.vm.set_visible(False)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.conversation.lock.setPixmap(lock_pixmap(self.conversation))

    # -- actions --------------------------------------------------------------------------------

    def send(self) -> None:
        composer = self.conversation.composer
        if self.vm.send(composer.toPlainText()):
            composer.clear()
            self.error_label.hide()

    def _picked(self, item: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        for each, selected in ((previous, False), (item, True)):
            row = self.list.itemWidget(each) if each is not None else None
            if isinstance(row, ConversationRow):
                row.set_selected(selected)
        if item is not None:
            peer = str(item.data(Qt.ItemDataRole.UserRole))
            if peer != self.vm.selected:
                self.vm.open(peer)

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    # -- drawing --------------------------------------------------------------------------------

    def _show_conversations(self) -> None:
        self.left.setCurrentWidget(self.list if self.vm.has_contacts else self.no_contacts)
        self.placeholder.setText(
            "Choose someone on the left to read and write messages."
            if self.vm.has_contacts
            else "When you share a room with someone, you can message them here."
        )
        scrolled = self.list.verticalScrollBar().value()
        with QSignalBlocker(self.list):  # rebuilding is not the user picking someone
            self.list.clear()
            for conversation in self.vm.conversations:
                item = QListWidgetItem()
                item.setData(Qt.ItemDataRole.UserRole, conversation.peer_id)
                unread = f", {conversation.unread} unread" if conversation.unread else ""
                item.setData(
                    Qt.ItemDataRole.AccessibleTextRole,
                    f"{conversation.name}{unread}. {conversation.preview}",
                )
                row = ConversationRow(conversation)
                item.setSizeHint(row.sizeHint())
                self.list.addItem(item)
                self.list.setItemWidget(item, row)
                if conversation.peer_id == self.vm.selected:
                    self.list.setCurrentItem(item)
                    row.set_selected(True)
        self.list.verticalScrollBar().setValue(scrolled)

    def _show_conversation(self) -> None:
        current = self.vm.current
        if current is None:
            self.right.setCurrentWidget(self.placeholder)
            return
        view = self.conversation
        self.right.setCurrentWidget(view)
        view.name.setText(current.name)
        view.note.setText(current.encryption_note)
        if current.safety_number:
            view.safety.setText(f"Safety number: {current.safety_number}")
            tip = (
                f"Safety number: {current.safety_number}\nCompare it with {current.name}'s,"
                " in person or on a call. If they match, no one can read your messages on"
                " the way."
            )
        else:
            view.safety.setText("")
            tip = current.encryption_note
        view.safety.setVisible(bool(current.safety_number))
        for widget in (view.lock, view.note, view.safety):
            widget.setToolTip(tip)
        view.messages.show_messages(current.peer_id, current.name, current.messages)
        view.composer.setEnabled(current.can_reply)
        view.send_button.setEnabled(current.can_reply)
        view.composer.setPlaceholderText(
            f"Write to {current.name}"
            if current.can_reply
            else f"You can write to {current.name} again once you share a room."
        )
