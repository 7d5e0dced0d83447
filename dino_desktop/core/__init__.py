"""The Qt-free core: storage, scanning, embedding and search behind the `Library` facade."""
